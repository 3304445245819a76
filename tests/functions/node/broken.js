// A handler module that throws while it loads: the runtime client reports it to
// /init/error and exits.
throw new Error("broken at load: missing configuration");
