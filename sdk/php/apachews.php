<?php
/*
 * apachews.php: apache-ws's PHP producer API, in pure PHP 8 (stream
 * sockets, no extension), over wsgate's framed producer protocol
 * (docs/backend-protocol.md).
 *
 * A producer written for apache-ws's PHP extension runs unchanged when
 * this file is loaded first, as the extension was:
 *
 *     php -d auto_prepend_file=/usr/share/php/apachews.php producer.php
 *
 * or with require 'apachews.php'. Its names are the extension's:
 * apachews\Server (dequeue, broadcast, language, close), apachews\Event
 * (getClient, read, respond, type, close) and apachews\Client (send,
 * close), with the ApacheWS* constants. What the framed protocol adds:
 * one read is one whole message, bytes that are not UTF-8 are sent as a
 * binary message, and Client::language() gives the client's
 * Accept-Language.
 */
namespace {
    const ApacheWSInvalidEvent = 8000;
    const ApacheWSAcceptEvent = 8001;
    const ApacheWSCloseEvent = 8002;
    const ApacheWSIOEvent = 8003;
    const ApacheWSSuccess = 0;
    const ApacheWSNoData = 1001;
    const ApacheWSConnectionClosed = 1002;
    const ApacheWSOutOfMemory = 1003;
    const ApacheWSError = 1004;
    const ApacheWSWouldBlock = 1005;
    const ApacheWSOther = 1006;
}

namespace apachews {

/** The protocol's frame types (docs/backend-protocol.md). */
final class Wire
{
    const HELLO = 0x01, OPEN = 0x02, MESSAGE = 0x03, CLOSED = 0x04;
    const HELLO_REPLY = 0x81, ACCEPT = 0x82, REFUSE = 0x83, SEND = 0x84, BROADCAST = 0x85;
    const ROOM = 0x86, JOIN = 0x87, LEAVE = 0x88, CLOSE = 0x89;
    const TEXT = 1, BINARY = 2;
    /** The largest frame accepted from the gateway. */
    const MAX_FRAME = 64 << 20;

    public static function frame(int $type, string $body): string
    {
        return pack('NC', strlen($body) + 1, $type) . $body;
    }

    public static function str(string $s): string
    {
        return pack('n', strlen($s)) . $s;
    }

    public static function u64(int $v): string
    {
        return pack('J', $v);
    }

    /** text for UTF-8, binary otherwise. */
    public static function kind(string $data): int
    {
        return preg_match('//u', $data) === 1 ? self::TEXT : self::BINARY;
    }
}

/** Reads a frame's body field by field. */
final class Reader
{
    private int $at = 0;

    public function __construct(private string $b)
    {
    }

    private function take(int $n): string
    {
        if ($this->at + $n > strlen($this->b)) {
            throw new \UnexpectedValueException('short frame');
        }
        $s = substr($this->b, $this->at, $n);
        $this->at += $n;
        return $s;
    }

    public function u8(): int { return ord($this->take(1)); }
    public function u16(): int { return unpack('n', $this->take(2))[1]; }
    public function u32(): int { return unpack('N', $this->take(4))[1]; }
    public function u64(): int { return unpack('J', $this->take(8))[1]; }
    public function left(): int { return strlen($this->b) - $this->at; }
    public function str(): string { return $this->take($this->u16()); }
    public function rest(): string { $s = substr($this->b, $this->at); $this->at = strlen($this->b); return $s; }
}

/** One connection from the gateway: in per-client mode it carries one client, in mux mode many. */
final class Link
{
    public string $in = '';
    public string $route = '';
    /** @var array<int, Client> */
    public array $clients = [];
    /** The largest frame the gateway takes (its HELLO says; 0: not said). */
    public int $maxFrame = 0;

    public function __construct(public $sock)
    {
    }

    /**
     * Writes a frame. One over the gateway's limit (the route's
     * max_message_size plus 64 KiB) is not written: the gateway would skip
     * it and close the client with 1009. That send returns -1 with a
     * warning saying so.
     */
    public function write(string $frame): bool
    {
        if ($this->maxFrame > 0 && strlen($frame) - 4 > $this->maxFrame) {
            trigger_error(sprintf('apachews: a frame of %d bytes is over the %d bytes the gateway takes (the route\'s max_message_size plus 64 KiB); not sent',
                strlen($frame) - 4, $this->maxFrame), E_USER_WARNING);
            return false;
        }
        for ($done = 0; $done < strlen($frame); $done += $n) {
            $n = @fwrite($this->sock, substr($frame, $done));
            if ($n === false || $n === 0) {
                return false;
            }
        }
        return true;
    }
}

final class Client
{
    /** @internal */
    public bool $closed = false;

    /** @internal */
    public function __construct(private Server $server, public readonly Link $link, public readonly int $id,
                                public readonly string $path, public readonly string $query,
                                public readonly string $remote, private array $headers)
    {
    }

    /** Sends a message: text when it is UTF-8, binary otherwise. Returns the bytes sent, or -1. */
    public function send(string $data): int
    {
        if ($this->closed) {
            return -1;
        }
        $ok = $this->link->write(Wire::frame(Wire::SEND, Wire::u64($this->id) . chr(Wire::kind($data)) . $data));
        return $ok ? strlen($data) : -1;
    }

    /** Closes the client (1000); no more events come for it. */
    public function close(): int
    {
        if (!$this->closed) {
            $this->closed = true;
            $this->link->write(Wire::frame(Wire::CLOSE, Wire::u64($this->id) . pack('n', 1000) . Wire::str('')));
        }
        $this->server->forget($this);
        return 0;
    }

    /** A request header the gateway forwarded, or null. */
    public function header(string $name): ?string
    {
        foreach ($this->headers as [$k, $v]) {
            if (strcasecmp($k, $name) === 0) {
                return $v;
            }
        }
        return null;
    }

    /** The client's Accept-Language, which apache-ws's module never delivered. */
    public function language(): ?string
    {
        return $this->header('Accept-Language');
    }

    public function guid(): int
    {
        return $this->id;
    }
}

final class Event
{
    /** @internal */
    public function __construct(private int $type, private Client $client, private ?string $data, private bool $gone = false)
    {
    }

    public function type(): int
    {
        return $this->type;
    }

    public function getClient(): Client
    {
        return $this->client;
    }

    /**
     * An IO event's message (a string), or ApacheWSConnectionClosed when
     * the client has gone, as apache-ws reported it; ApacheWSNoData for
     * an accept event.
     */
    public function read(): string|int
    {
        if ($this->gone) {
            return \ApacheWSConnectionClosed;
        }
        return $this->data ?? \ApacheWSNoData;
    }

    public function respond(string $data): int
    {
        return $this->client->send($data);
    }

    /** apache-ws's README calls write(); its extension had respond(). */
    public function write(string $data): int
    {
        return $this->respond($data);
    }

    public function close(): int
    {
        return $this->client->close();
    }
}

final class Server
{
    private $listener;
    /** @var array<int, Link> */
    private array $links = [];
    /** @var list<Event> */
    private array $queue = [];

    /** Listens on a UNIX socket at $path, which a wsgate route's backend (or docroot) names. */
    public function __construct(private string $path, int $mode = 0777)
    {
        if (file_exists($path) && filetype($path) === 'socket') {
            $probe = @stream_socket_client('unix://' . $path, $errno, $errstr, 1);
            if ($probe !== false) {
                fclose($probe);
                throw new \RuntimeException("$path is in use");
            }
            unlink($path);
        }
        // Bound under a temporary name, then renamed into place, so that
        // the gateway never finds the path refusing connections.
        $tmp = dirname($path) . '/.wsgate-' . getmypid() . '.sock';
        @unlink($tmp);
        $this->listener = stream_socket_server('unix://' . $tmp, $errno, $errstr);
        if ($this->listener === false) {
            throw new \RuntimeException("cannot listen on $path: $errstr");
        }
        chmod($tmp, $mode);
        rename($tmp, $path);
    }

    /** The next event; blocks until one comes. Returns null once the server is closed. */
    public function dequeue(): ?Event
    {
        while (!$this->queue) {
            if ($this->listener === null) {
                return null;
            }
            $read = [$this->listener];
            foreach ($this->links as $l) {
                $read[] = $l->sock;
            }
            $write = $except = null;
            if (@stream_select($read, $write, $except, null) === false) {
                continue; // a signal
            }
            foreach ($read as $s) {
                if ($s === $this->listener) {
                    $c = @stream_socket_accept($this->listener, 0);
                    if ($c !== false) {
                        $this->links[(int)$c] = new Link($c);
                    }
                    continue;
                }
                $this->readLink($this->links[(int)$s]);
            }
        }
        return array_shift($this->queue);
    }

    private function readLink(Link $l): void
    {
        $chunk = @fread($l->sock, 65536);
        if ($chunk === false || ($chunk === '' && feof($l->sock))) {
            $this->dropLink($l);
            return;
        }
        $l->in .= $chunk;
        while (strlen($l->in) >= 5) {
            $n = unpack('N', $l->in)[1];
            if ($n < 1 || $n > Wire::MAX_FRAME) {
                $this->dropLink($l);
                return;
            }
            if (strlen($l->in) < 4 + $n) {
                return;
            }
            $type = ord($l->in[4]);
            $body = substr($l->in, 5, $n - 1);
            $l->in = substr($l->in, 4 + $n);
            try {
                $this->handle($l, $type, new Reader($body));
            } catch (\UnexpectedValueException) {
                $this->dropLink($l);
                return;
            }
        }
    }

    private function handle(Link $l, int $type, Reader $r): void
    {
        switch ($type) {
        case Wire::HELLO:
            $r->u16();
            $r->u8();
            $l->route = $r->str();
            $r->str(); // software
            if ($r->left() >= 4) {
                $l->maxFrame = $r->u32();
            }
            $l->write(Wire::frame(Wire::HELLO_REPLY, pack('n', 1)));
            break;
        case Wire::OPEN:
            $id = $r->u64();
            $path = $r->str();
            $query = $r->str();
            $r->str(); // host
            $remote = $r->str();
            $r->u8();
            for ($i = $r->u8(); $i > 0; $i--) {
                $r->str();
            }
            $headers = [];
            for ($i = $r->u16(); $i > 0; $i--) {
                $headers[] = [$r->str(), $r->str()];
            }
            $c = new Client($this, $l, $id, $path, $query, $remote, $headers);
            $l->clients[$id] = $c;
            // apache-ws's clients were connected before the program heard
            // of them: accept at once.
            $l->write(Wire::frame(Wire::ACCEPT, Wire::u64($id) . Wire::str('') . pack('n', 0)));
            $this->queue[] = new Event(\ApacheWSAcceptEvent, $c, null);
            break;
        case Wire::MESSAGE:
            $c = $l->clients[$r->u64()] ?? null;
            $r->u8();
            if ($c !== null) {
                $this->queue[] = new Event(\ApacheWSIOEvent, $c, $r->rest());
            }
            break;
        case Wire::CLOSED:
            $id = $r->u64();
            $c = $l->clients[$id] ?? null;
            unset($l->clients[$id]);
            if ($c !== null) {
                $c->closed = true;
                $this->queue[] = new Event(\ApacheWSIOEvent, $c, null, true);
            }
            break;
        }
    }

    private function dropLink(Link $l): void
    {
        unset($this->links[(int)$l->sock]);
        @fclose($l->sock);
        foreach ($l->clients as $c) {
            $c->closed = true;
            $this->queue[] = new Event(\ApacheWSIOEvent, $c, null, true);
        }
        $l->clients = [];
    }

    /** @internal */
    public function forget(Client $c): void
    {
        unset($c->link->clients[$c->id]);
    }

    /**
     * Sends a message to every client, once per route (one BROADCAST on a
     * connection of each); returns the bytes sent summed over the clients.
     */
    public function broadcast(string $data): int
    {
        $byRoute = [];
        $n = 0;
        foreach ($this->links as $l) {
            if ($l->clients) {
                $byRoute[$l->route] ??= $l;
                $n += count($l->clients);
            }
        }
        foreach ($byRoute as $l) {
            if (!$l->write(Wire::frame(Wire::BROADCAST, Wire::u64(0) . chr(Wire::kind($data)) . $data))) {
                return -1;
            }
        }
        return $n * strlen($data);
    }

    /** The extension's Server::language(); a client's is Client::language(). */
    public function language(): ?string
    {
        return null;
    }

    public function close(): void
    {
        if ($this->listener !== null) {
            fclose($this->listener);
            $this->listener = null;
            @unlink($this->path);
        }
        foreach ($this->links as $l) {
            @fclose($l->sock);
        }
        $this->links = [];
    }
}
}
