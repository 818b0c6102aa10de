"""What several tests share: a fake Hub, a task for the worker, raw HTTP calls, a child process sending traffic."""
