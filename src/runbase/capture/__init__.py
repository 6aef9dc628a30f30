"""What a run records: code, environment, parameters, secrets redaction."""
