"""Work after intake as tasks: the same step functions run in `feedbackloop deliveries work` (one process,
laptop mode) and, with ``FEEDBACKLOOP_BROKER_URL`` set, as Celery tasks on workers per queue
(``feedbackloop worker``, ``feedbackloop beat``). Progress lives in the database, so every step can run
twice, or be killed half way, without doubling anything."""
