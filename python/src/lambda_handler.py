# fmi.lambda_handler: the pure-Python part of the fmi module. The build embeds this
# file in the extension (python/CMakeLists.txt generates lambda_handler_py.h from it)
# and runs it at import with `fmi` bound to the module, so the module stays a single
# file that a Lambda layer ships as it is. See docs/lambda.md for the event contract.


def lambda_handler(fn=None, *, default_config=None):
    """Turns fn(comm, event, context) into an AWS Lambda handler(event, context).

        @fmi.lambda_handler
        def handler(comm, event, context):
            return comm.allreduce(event["x"], fmi.func(fmi.op.sum))

    The handler builds the Communicator from the event that `fmirun --lambda` sends
    (peer_id, num_peers, comm_name, fmi_config; secrets such as the Direct channel's
    FMI_SECRET and FMI_REDIS_PASSWORD come from the function's environment, read by
    the library), calls fn, closes the Communicator, and returns fn's result made JSON
    serialisable (NumPy arrays and scalars become lists and numbers). Without
    fmi_config in the event, FMI_CONFIG (a path) is used, else default_config(event)
    (a path or a dict) when given.

    Errors: by default an exception propagates, and Lambda reports it with errorType
    = its class name (fmi.PeerError, fmi.TimeoutError, ...). With FMI_LAMBDA_ERRORS
    =return, or under serverless-offline (IS_OFFLINE=true), whose worker dies on an
    uncaught exception, the handler returns the same error payload instead:
    {"errorType", "errorMessage", "stackTrace"}; fmirun --lambda counts both as a
    failed function."""
    import functools
    import json
    import os
    import sys
    import tempfile
    import traceback

    def jsonable(value):
        if isinstance(value, dict):
            return {str(k): jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [jsonable(v) for v in value]
        if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
            return jsonable(value.tolist())  # NumPy arrays and scalars
        if isinstance(value, (bytes, bytearray)):
            return value.decode("utf-8", "replace")
        return value

    def field(event, name, kind):
        if name not in event:
            raise fmi.UsageError(f"the event has no '{name}': start the job with fmirun --lambda "
                                 f"(events carry peer_id, num_peers, comm_name, fmi_config)")
        value = event[name]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise fmi.UsageError(f"event field '{name}' must be an integer, not {value!r}")
        if kind is str and not isinstance(value, str):
            raise fmi.UsageError(f"event field '{name}' must be a string, not {value!r}")
        return value

    def config_of(event):
        cfg = event.get("fmi_config")
        if cfg is None and os.environ.get("FMI_CONFIG"):
            return os.environ["FMI_CONFIG"]
        if cfg is None and default_config is not None:
            cfg = default_config(event)
        if cfg is None:
            raise fmi.ConfigError("no FMI configuration: the event has no 'fmi_config' (fmirun "
                                  "--lambda --config FILE sends it) and FMI_CONFIG is not set")
        if isinstance(cfg, str):
            return cfg
        if not isinstance(cfg, dict):
            raise fmi.ConfigError("event field 'fmi_config' must be a JSON object")
        return cfg

    def communicator(event, context):
        if not isinstance(event, dict):
            raise fmi.UsageError(f"the event must be a JSON object, not {type(event).__name__}")
        cfg = config_of(event)
        peer_id = field(event, "peer_id", int)
        num_peers = field(event, "num_peers", int)
        comm_name = field(event, "comm_name", str)
        memory = int(getattr(context, "memory_limit_in_mb", 0) or 128)
        if isinstance(cfg, str):
            return fmi.Communicator(peer_id, num_peers, cfg, comm_name, memory)
        # The library reads configuration files: one in /tmp (Lambda's writable
        # folder), owner-only, removed once the Communicator has parsed it.
        fd, path = tempfile.mkstemp(prefix="fmi-config-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(cfg, f)
            return fmi.Communicator(peer_id, num_peers, path, comm_name, memory)
        finally:
            os.unlink(path)

    def decorate(fn):
        @functools.wraps(fn)
        def handler(event, context):
            try:
                with communicator(event, context) as comm:
                    result = fn(comm, event, context)
                result = jsonable(result)
                json.dumps(result)  # not serialisable: an error here, not a runtime's crash
                return result
            except Exception as e:
                mode = os.environ.get("FMI_LAMBDA_ERRORS") or (
                    "return" if os.environ.get("IS_OFFLINE") == "true" else "raise")
                if mode != "return":
                    raise
                # The payload Lambda itself makes of an uncaught exception.
                trace = traceback.format_exception(type(e), e, e.__traceback__)
                sys.stderr.write("".join(trace))
                return {"errorType": type(e).__name__, "errorMessage": str(e),
                        "stackTrace": [line.rstrip("\n") for line in trace]}
        return handler

    return decorate if fn is None else decorate(fn)
