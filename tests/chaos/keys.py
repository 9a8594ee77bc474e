"""The consumer's Redis keys, in the run's own Redis (beside jobops' and Celery's).

    chaos:outcomes        list: JSON {"outcome": …, "recorded_at": epoch seconds}, one per
                          callback task id (first copies only)
    chaos:copies          every copy the consumer was handed, before de-duplication
    chaos:dropped-copies  copies dropped because their task id was seen before
    chaos:seen:<task id>  "1" once that callback task id was recorded; TTL a day
"""

OUTCOMES_KEY = "chaos:outcomes"
COPIES_KEY = "chaos:copies"
DROPPED_KEY = "chaos:dropped-copies"
SEEN_PREFIX = "chaos:seen:"
