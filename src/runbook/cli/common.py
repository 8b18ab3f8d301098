"""What every `runbook` command module shares (click's context settings)."""

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
