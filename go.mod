module github.com/wsgate/wsgate

go 1.26

require go.yaml.in/yaml/v3 v3.0.6

require (
	github.com/coder/websocket v1.8.15 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
)
