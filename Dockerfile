FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY jobops ./jobops
COPY settings ./settings
COPY workers ./workers
COPY tasks ./tasks
COPY sandbox ./sandbox
RUN pip install --no-cache-dir . && useradd --create-home jobops
USER jobops
CMD ["celery", "-A", "workers", "worker", "--loglevel", "INFO"]
