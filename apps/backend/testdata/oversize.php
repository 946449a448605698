<?php
// oversize_blocking.py for apache-ws's PHP API: a refused send returns -1.
$ws = new apachews\Server($argv[1]);
while ($event = $ws->dequeue()) {
    if ($event->type() !== ApacheWSIOEvent) {
        continue;
    }
    $data = $event->read();
    if (!is_string($data)) {
        $event->close();
        continue;
    }
    [$what, $n] = explode(' ', $data);
    $payload = str_repeat('x', (int)$n);
    $sent = $what === 'send' ? $event->respond($payload) : $ws->broadcast($payload);
    if ($sent < 0) {
        $event->respond('refused');
    }
}
