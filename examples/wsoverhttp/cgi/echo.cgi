#!/bin/sh
# A WebSocket echo as a shell CGI script. mod_wsgate's WebSocketEventHandler
# runs it for every WebSocket event (WebSocket-over-HTTP: the events are
# the POST body) and sends the client the events it prints. It greets a
# new client, subscribes it to the channel "news" (GRIP, without a message
# prefix), and echoes what the client sends, text and binary, byte for byte.
in=$(mktemp) && out=$(mktemp) && trap 'rm -f "$in" "$out" "$in.c"' EXIT
head -c "${CONTENT_LENGTH:-0}" >"$in"
cr=$(printf '\r')
exec 3<"$in"
while IFS= read -r line <&3; do
    line=${line%"$cr"}
    case $line in
    OPEN)
        sub='c:{"type":"subscribe","channel":"news"}'
        hello="hello $REMOTE_ADDR"
        printf 'OPEN\r\nTEXT %x\r\n%s\r\nTEXT %x\r\n%s\r\n' ${#sub} "$sub" ${#hello} "$hello" >>"$out"
        ;;
    "TEXT "* | "BINARY "*)
        head -c $((0x${line#* })) <&3 >"$in.c"
        head -c 2 <&3 >/dev/null # the CRLF after the content
        printf '%s\r\n' "$line" >>"$out"
        cat "$in.c" >>"$out"
        printf '\r\n' >>"$out"
        ;;
    "CLOSE "*)
        head -c $((0x${line#* }+2)) <&3 >/dev/null
        printf 'CLOSE\r\n' >>"$out"
        ;;
    esac
done
printf 'Content-Type: application/websocket-events\r\n'
printf 'Sec-WebSocket-Extensions: grip; message-prefix=""\r\n\r\n'
cat "$out"
