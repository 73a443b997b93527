"""Small pieces every part of the daemon shares: worker threads, log throttles, queues, files."""
