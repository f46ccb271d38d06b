"""Scoregate's JVM transports (Python side): the JPype in-process host, the Py4J server and the
shared tensor arenas. The Java API and the reference ad server are the Maven modules beside this."""
