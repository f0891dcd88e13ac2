"""CDC: publication and slot setup, a pgoutput decoder, the verifier, Debezium helpers."""
