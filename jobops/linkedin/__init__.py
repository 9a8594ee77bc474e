"""LinkedIn over HTTP: OAuth client credentials and the task-status client."""
