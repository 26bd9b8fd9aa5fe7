// The HTTP/1.1 server lands with its own issue; this file keeps the target building until then.
