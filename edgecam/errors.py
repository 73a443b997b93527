"""User-facing errors and the exit codes they map to.

Everything a user can get wrong (a config, a model file, an image, a camera)
raises one of these. The CLI prints `edgecam: <message>` and exits with the
code, never a traceback. The codes follow sysexits(3) so that systemd units
(RestartPreventExitStatus=) and scripts can tell a bad config from a crash;
80-86, past sysexits' range, say which optional piece is not installed
(edgecam/dependencies.py), since each has its own fix.
"""

EX_DATAERR = 65  # input data unusable: bad image, bad model, bad labels
EX_NOINPUT = 66  # a file that must exist does not
EX_UNAVAILABLE = 69  # a camera, a stream or another daemon's socket is in the way
EX_SOFTWARE = 70  # internal error: a bug, reported with a traceback
EX_TEMPFAIL = 75  # a download that may succeed later
EX_CONFIG = 78  # the configuration is invalid
EX_NO_OPENCV = 80  # OpenCV (cv2) is not installed
EX_NO_RUNTIME = 81  # no TensorFlow Lite runtime (LiteRT, tflite-runtime) is installed
EX_NO_PICAMERA2 = 82  # camera.source is picamera2 and picamera2 is not installed
EX_NO_PAHO = 83  # outputs.mqtt is enabled and paho-mqtt 2.x is not installed (absent, or 1.x)
EX_NO_ONNXRUNTIME = 84  # an .onnx model and onnxruntime is not installed
EX_NO_HAILORT = 85  # a .hef model and the Hailo runtime (hailo_platform, apt's hailo-all) is not installed
EX_NO_CRYPTOGRAPHY = 86  # signed fleet rollouts (fleet.manifest_key, fleet keygen/sign) and no cryptography
EX_BROKEN_PIPE = 141  # what read the output went away (`| head`): a shell's code for a SIGPIPE death


class EdgecamError(Exception):
    """A mistake or condition the user can fix; its message is one line."""

    exit_code = EX_DATAERR


class ConfigError(EdgecamError):
    """The configuration is invalid; `lines` holds every `FILE:LINE: key: problem`."""

    exit_code = EX_CONFIG

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class ModelError(EdgecamError):
    """The model or labels file cannot be used as an image classifier."""

    exit_code = EX_DATAERR


class MissingFileError(EdgecamError):
    """A file named by the user does not exist."""

    exit_code = EX_NOINPUT


class SourceError(EdgecamError):
    """A camera or stream cannot be opened or read."""

    exit_code = EX_UNAVAILABLE


class ListenError(EdgecamError):
    """An address to serve on cannot be taken: a port or socket path another program holds
    (another edgecam, most often), or one this host refuses (no such address, no permission)."""

    exit_code = EX_UNAVAILABLE


class DownloadError(EdgecamError):
    """A model download failed or did not match its checksum."""

    exit_code = EX_TEMPFAIL


class DownloadRefused(DownloadError):
    """A download that retrying will not help: the source is not acceptable (not a regular file,
    larger than allowed) or its bytes are not the ones asked for."""


class ChecksumError(DownloadRefused):
    """A download that completed, but whose bytes are not the ones asked for: no retry helps."""
