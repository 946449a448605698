<?php
// A chat room in PHP, written for Pushpin's WebSocket-over-HTTP: every
// WebSocket event comes as a POST of application/websocket-events (in
// mod_wsgate as a subrequest: WebSocketEventHandler /app/chat.php; in the
// daemon with backend: {http: URL}), and what this prints goes back.
// "/nick NAME" names the client (kept by the gateway as Meta-Nick);
// anything else goes to the room through the gateway's publish endpoint.

$publish = $_SERVER['WSGATE_PUBLISH'] ?? getenv('WSGATE_PUBLISH') ?: 'http://127.0.0.1/publish/';

function events(string $body): array {
    $out = [];
    while ($body !== '') {
        [$line, $body] = explode("\r\n", $body, 2);
        [$type, $size] = array_pad(explode(' ', $line, 2), 2, null);
        $content = null;
        if ($size !== null) {
            $n = hexdec($size);
            $content = substr($body, 0, $n);
            $body = (string)substr($body, $n + 2);
        }
        $out[] = [$type, $content];
    }
    return $out;
}

function event(string $type, ?string $content = null): string {
    return $content === null ? "$type\r\n" : sprintf("%s %x\r\n%s\r\n", $type, strlen($content), $content);
}

function publish(string $url, string $channel, string $text): void {
    $item = ['channel' => $channel, 'formats' => ['ws-message' => ['content' => $text]]];
    file_get_contents($url, false, stream_context_create(['http' => [
        'method' => 'POST', 'header' => "Content-Type: application/json\r\n",
        'content' => json_encode(['items' => [$item]]), 'timeout' => 5]]));
}

header('Content-Type: application/websocket-events');
$nick = $_SERVER['HTTP_META_NICK'] ?? 'guest';
$out = '';
foreach (events(file_get_contents('php://input')) as [$type, $content]) {
    if ($type === 'OPEN') {
        header('Sec-WebSocket-Extensions: grip');
        $out .= event('OPEN') . event('TEXT', 'c:' . json_encode(['type' => 'subscribe', 'channel' => 'room']));
    } elseif ($type === 'TEXT' && strncmp($content, '/nick ', 6) === 0) {
        $nick = trim(substr($content, 6));
        header('Set-Meta-Nick: ' . $nick);
        $out .= event('TEXT', "m:you are $nick");
    } elseif ($type === 'TEXT') {
        publish($publish, 'room', "$nick: $content");
    } elseif ($type === 'CLOSE') {
        $out .= event('CLOSE', $content);
    }
}
echo $out;
