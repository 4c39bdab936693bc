"""The subcommands of `livechat`, one module each; chat/cli.py builds the parser."""
