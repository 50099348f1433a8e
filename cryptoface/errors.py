"""Every error cryptoface raises on purpose is a `CryptofaceError`.

Callers (the CLI, the server) catch this one base class and show its message; anything
else escaping the library is a bug. Each subclass names one kind of misuse so tests and
users can tell them apart without parsing messages.
"""


class CryptofaceError(Exception):
    """Base class of all deliberate cryptoface errors."""


class ConfigError(CryptofaceError):
    """Bad configuration: unknown backend, unreadable config file, bad option."""


class BackendUnavailableError(CryptofaceError):
    """A backend is registered but its library is missing or broken."""


class CapabilityError(CryptofaceError):
    """The backend cannot do what was asked (e.g. bootstrap on SEAL)."""


class InsecureParametersError(CryptofaceError):
    """Parameters below 128-bit security without `insecure_test_params`."""


class ParameterError(CryptofaceError):
    """Parameters that are inconsistent or that the library refuses."""


class InvalidInputError(CryptofaceError):
    """Values that cannot be encrypted: too long, NaN/inf, too large for the modulus."""


class ValueBoundError(InvalidInputError):
    """A value outgrew the bound the compiler planned for it (seen where values are visible)."""


class ContextMismatchError(CryptofaceError):
    """Operands from different key sets or different backends were combined."""


class LevelMismatchError(CryptofaceError):
    """Operands at different levels met without an explicit mod-switch."""


class ScaleMismatchError(CryptofaceError):
    """Operands whose scales differ by more than rounding drift."""


class LevelExhaustedError(CryptofaceError):
    """No multiplicative level is left for the requested operation."""


class RotationKeyError(CryptofaceError):
    """A rotation was requested for a step whose Galois key was not generated."""


class MissingSecretKeyError(CryptofaceError):
    """Decryption was attempted with an evaluation (server) context."""


class DecryptionError(CryptofaceError):
    """The library could not decode a decrypted ciphertext: its values outgrew the modulus."""


class SerializationError(CryptofaceError):
    """Bytes that are not a valid cryptoface object: corrupted, truncated or foreign."""


class AuthenticationError(SerializationError):
    """Bytes whose MAC does not verify: altered, or sealed under another client's MAC key."""


class ProgramMismatchError(CryptofaceError):
    """A program file made for another backend or model, or in a newer format version."""


class CompileError(CryptofaceError):
    """The compiler cannot produce a plan (depth, memory, unsupported op...)."""


class UnsupportedOpError(CompileError):
    """An ONNX op or attribute the importer does not support."""


class StoreError(CryptofaceError):
    """The template store refused an operation: unknown or duplicate identity, unreadable database."""


class TamperedRecordError(StoreError):
    """A stored row does not open under its associated data: edited, swapped or copied."""


class UnknownIdentityError(StoreError):
    """No template is enrolled for this identity (under this model)."""


class DuplicateIdentityError(StoreError):
    """The identity is already enrolled and re-enrollment was not asked for."""


class KeyProviderError(StoreError):
    """The store's data or audit key is missing, unsafe (readable by others, beside the database) or wrong."""


class AuditChainError(StoreError):
    """The audit log's MAC chain breaks: an entry was edited, deleted, inserted or reordered."""


class InsecureParametersWarning(UserWarning):
    """`insecure_test_params` is on: encryption may be below 128-bit (tests only)."""
