"""Video task families, one file per family (registered in ``envs/registry.py``).

Every family draws a small synthetic video (coloured shapes on a dark backdrop, or a top-down
room for ``spatial_scene``), encodes it to H.264 mp4 in ``cache_dir`` and asks a question whose
answer needs frames from across the video. Lengths grow with difficulty (difficulty 0: 6–14 s,
1: 32–58 s, 2: ~2–3.7 min at 3 fps), so agents must sample frames on demand instead of looking
at everything. Timing questions are answered in seconds and scored with MRA.

=============================  ===========================================  ==========
family                         question                                     answer
=============================  ===========================================  ==========
``event_onset``                when does a shape appear / a ball's centre   seconds,
                               enter an outlined zone?                      ``mra``
``event_counting``             how many flashes of one lamp / balls of a    ``number``
                               colour crossing a line?                      (exact)
``state_at_time``              colour of a shape at t s (or when another    ``choice``
                               shape first turns X)?
``appearance_order``           order in which the colours first appear      ``choice``
``motion_direction``           direction of motion (8 compass names) or     ``choice``
                               which shape moves fastest
``object_counting_over_time``  distinct shapes over the video, never all    ``number``
                               on screen at once                            (exact)
``spatial_scene``              room under a sliding top-down camera:        ``choice``,
                               direction, closest, count, size, distance    ``number``,
                                                                            ``mra``
=============================  ===========================================  ==========

Drawing, encoding and the video task assembly (:func:`rendering.video_task`) live in
``rendering.py``; the room of ``spatial_scene`` in ``scene.py``; the experts' programs in
``experts/`` (``blobs.py`` is the colour/blob helper they share).
"""
