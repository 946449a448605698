<?php
// A chat producer in apache-ws's PHP style: every message goes to every
// client; "lang" answers with the client's Accept-Language.
//
//     php -d auto_prepend_file=sdk/php/apachews.php chat.php /run/wsgate/chat.ws
$path = $argv[1] ?? "/var/www/public_html/chat.ws";
if (file_exists($path))
    unlink($path);
$ws = new apachews\Server($path);
$names = [];
while ($event = $ws->dequeue()) {
    $client = $event->getClient();
    switch ($event->type()) {
    case ApacheWSAcceptEvent:
        $names[$client->guid()] = "guest" . (count($names) + 1);
        break;
    case ApacheWSIOEvent:
        $data = $event->read();
        if ($data === ApacheWSConnectionClosed || $data === ApacheWSError) {
            unset($names[$client->guid()]);
            $event->close();
        } elseif ($data === "lang") {
            $client->send($client->language() ?? "none");
        } else {
            $ws->broadcast($names[$client->guid()] . ": " . $data);
        }
        break;
    }
}
