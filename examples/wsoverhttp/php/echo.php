<?php
// A WebSocket echo in PHP (WebSocket-over-HTTP): every event of a
// connection is POSTed here; messages go back as they came. The benchmark
// harness runs it inside httpd (subrequests) and behind the daemon.
header('Content-Type: application/websocket-events');
$body = file_get_contents('php://input');
while ($body !== '') {
    [$line, $body] = explode("\r\n", $body, 2);
    [$type, $size] = array_pad(explode(' ', $line, 2), 2, null);
    if ($size === null) {
        echo "$type\r\n";
        continue;
    }
    $n = hexdec($size);
    echo $line, "\r\n", substr($body, 0, $n), "\r\n";
    $body = (string)substr($body, $n + 2);
}
