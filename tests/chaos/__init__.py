"""The chaos run: URNs verified while pool processes die, Redis is SIGKILLed, garbage lands
on the queue and the API misbehaves; nothing may be lost, doubled or wrong.

    .venv/bin/python -m tests.chaos --profile short     # CI's, about a minute
    .venv/bin/python -m tests.chaos --profile long --repeat 3    # `make chaos`

Modules: ``profiles`` (the shapes), ``redis_server`` (the run's own Redis), ``fleet``
(workers and consumer, supervised), ``scheduling`` (the pipeline's side, in a thread),
``disruptions`` (kills, Redis kill, garbage, on one clock), ``observer`` (reads during the
run), ``report`` (figures and checks), ``run`` (one run), ``cli``.
"""
