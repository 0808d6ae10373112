"""Sub-commands of the ``dldfd`` CLI: each module adds its arguments to a parser (listed in
:data:`dldfd_hf.cli.COMMANDS`) and sets the function that runs it."""
