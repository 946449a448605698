<?php
// An echo producer written for apache-ws's PHP extension, as its sample
// is. Run it with the SDK loaded first, in place of the extension:
//
//     php -d auto_prepend_file=sdk/php/apachews.php echo.php /run/wsgate/echo.ws
$path = $argv[1] ?? "/var/www/public_html/websocket.ws";
if (file_exists($path))
    unlink($path);
$ws = new apachews\Server($path);
while ($event = $ws->dequeue()) {
    switch ($event->type()) {
    case ApacheWSAcceptEvent:
        // Ignore this, or keep the client to write to it later.
        break;
    case ApacheWSIOEvent:
        $data = $event->read();
        switch ($data) {
        case ApacheWSError:
        case ApacheWSConnectionClosed:
            // Close the client, as apache-ws's sample insists.
            $event->close();
            break;
        default:
            if ($data === "quit")
                $event->close();
            else
                $event->respond($data);
            break;
        }
        break;
    }
}
