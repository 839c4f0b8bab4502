"""Code that runs inside the sandboxed worker process."""
