"""Starting the JVM inside this Python process (JPype), with the Scoregate Java API on the classpath.

One JVM per process, for the life of the process (JPype cannot restart one). :func:`start_jvm` is
idempotent; a second call with a classpath the running JVM lacks is an error, not a silent no-op.

Because the JVM cannot be restarted with more jars, the one that starts it puts the Hazelcast
client jar on its classpath whenever ``make setup`` fetched it (:func:`optional_classpath`): the
feature reader (``jvm_bridge.features``, the ad server's ``--members``) then works in any process,
whoever started the JVM first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["bridge_classpath", "optional_classpath", "start_jvm"]

ROOT = Path(__file__).resolve().parents[1]


def bridge_classpath() -> list[str]:
    """The Java API's classes as the Maven build leaves them (``mvn install`` in ``make setup``)."""
    classes = ROOT / "jvm_bridge" / "target" / "classes"
    if not classes.is_dir():
        raise FileNotFoundError(f"{classes} is missing: build the Java API first ('make setup' or 'mvn install')")
    return [str(classes)]


def optional_classpath() -> list[str]:
    """Jars added when present: the Hazelcast jar (``build/jars``) for the feature reader."""
    from cache.member import HAZELCAST_VERSION

    jar = ROOT / "build" / "jars" / f"hazelcast-{HAZELCAST_VERSION}.jar"
    return [str(jar.resolve())] if jar.is_file() else []


def start_jvm(classpath: Sequence[str | os.PathLike[str]] = (), jvm_args: Sequence[str] = ()) -> None:
    """Start the JVM with the bridge classes plus ``classpath``; return at once if it already runs."""
    import jpype

    wanted = [*bridge_classpath(), *(str(Path(p).resolve()) for p in classpath)]
    if jpype.isJVMStarted():
        running = set(str(jpype.java.lang.System.getProperty("java.class.path")).split(os.pathsep))
        missing = [p for p in wanted if p not in running]
        if missing:
            raise RuntimeError(
                f"the JVM already runs without {missing}; one JVM per process, start it with all of them"
            )
        return
    # -Xrs: leave SIGINT/SIGTERM to Python, so Ctrl-C and pytest-timeout behave as in a plain Python process.
    wanted += [p for p in optional_classpath() if p not in wanted]
    jpype.startJVM(*jvm_args, "-Xrs", classpath=wanted, convertStrings=False)
