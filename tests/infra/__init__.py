"""Infrastructure checks: Bicep parses, checkov passes, settings match the code."""
