"""``loadgen cdc capture``: Debezium's PostgreSQL connector in-process, writing an event file.

``java`` starts the JVM, ``engine`` runs the embedded engine, ``sink`` is the fsynced event file
and its neighbours, ``preflight`` checks the server, ``stop`` the stop conditions, ``runner``
one capture, ``background`` the detached mode. Only ``java`` and ``engine`` touch JPype.
"""
