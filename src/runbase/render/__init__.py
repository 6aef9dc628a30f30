"""Text, HTML and JSON views of what the records and the analysis hold."""
