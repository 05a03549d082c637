"""The one exception type for a user's mistake: printed as one line, exit code 1."""

from hydra.errors import CompactHydraException


class ConfigError(CompactHydraException):
    """Bad input (config value, file, checkpoint): the message names the key, the value
    and what is accepted. Hydra prints only this message, no traceback (unless
    HYDRA_FULL_ERROR=1), and exits non-zero."""

    def __init__(self, key: str, value: object, accepted: str):
        super().__init__(f"{key}={value}: {accepted}")
        self.key = key
