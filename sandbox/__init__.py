"""A LinkedIn-compatible emulator of the token, posting and task-status endpoints."""

from sandbox.server import SandboxServer
from sandbox.state import SandboxConfig, SandboxState

__all__ = ["SandboxConfig", "SandboxServer", "SandboxState"]
