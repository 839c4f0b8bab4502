"""Task families (procedurally generated image and video tasks)."""
