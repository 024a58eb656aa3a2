"""Named errors of the recommendation service, one per failure a caller may handle."""


class RecommendationServiceError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(RecommendationServiceError, ValueError):
    """A configuration value is missing, out of range or inconsistent."""


class MalformedEvent(RecommendationServiceError, ValueError):
    """An interaction message could not be parsed; ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ModelFitError(RecommendationServiceError):
    """Training ALS on a window failed or produced unusable factors."""


class ModelLoadError(RecommendationServiceError):
    """A published model version is missing, incomplete, corrupt or inconsistent."""


class NoModelError(RecommendationServiceError):
    """No model version has been published yet."""


class BrokerError(RecommendationServiceError):
    """The broker the service starts (Apache Kafka) could not be set up or reached."""


class JavaNotFound(BrokerError):
    """No Java 17+ runtime to run (Apache Kafka and the Spark trainer need one)."""


class ErasureError(RecommendationServiceError):
    """An erasure could not be recorded, or the erasures topic cannot be used."""


class KafkaRefused(RecommendationServiceError):
    """The Kafka cluster refused a client's credentials or TLS settings (with its reason)."""


class LeaseLost(RecommendationServiceError):
    """This builder no longer holds the builder lease: another one took over, so nothing it
    would write now may reach the servers (see builder/lease/kafka_lease.py)."""
