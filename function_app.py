"""The Azure Functions app (Python v2 model): registers the blueprints and nothing else."""

import azure.durable_functions as df

from functions import calls, console, health, manage, tools
from orchestrations import workflows
from reddytalk.logs import install_redaction

install_redaction()  # the host's log handler is not ours: redact records as they are made

app = df.DFApp()
app.register_functions(calls.bp)
app.register_functions(console.bp)
app.register_functions(health.bp)
app.register_functions(manage.bp)
app.register_functions(tools.bp)
app.register_functions(workflows.bp)
