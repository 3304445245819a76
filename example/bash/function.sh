# The function: the event on stdin, the response on stdout. This one echoes the event.
handler() {
  cat
}
