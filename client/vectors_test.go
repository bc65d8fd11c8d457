package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestMalformedServerMessages feeds the SDK every malformed server message
// of the protocol's test vectors: each must end the session with
// ErrProtocol (connecting fails when it comes instead of the welcome),
// never hang and never be ignored.
func TestMalformedServerMessages(t *testing.T) {
	data, err := os.ReadFile("../protocol/testdata/vectors/malformed.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			Name, Phase, Rule, Hex string
		}
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("no malformed vectors")
	}
	for _, v := range file.Vectors {
		msg, err := hex.DecodeString(v.Hex)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		t.Run(v.Name, func(t *testing.T) {
			f := newFakeServer(t, func(t *testing.T, conn *websocket.Conn, _ *http.Request, _ uint64) {
				if v.Phase == "session" {
					welcome(t, conn, 1, 1<<14)
				}
				conn.SetWriteDeadline(time.Now().Add(waitLimit))
				conn.WriteMessage(websocket.BinaryMessage, msg)
				drain(conn)
			})
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			c, err := Dial(ctx, Options{URL: f.url})
			if v.Phase == "welcome" {
				if err == nil {
					c.Close()
					t.Fatalf("%s (%s): Dial succeeded", v.Name, v.Rule)
				}
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("%s (%s): Dial: %v, want ErrProtocol", v.Name, v.Rule, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			select {
			case <-c.Done():
			case <-time.After(waitLimit):
				t.Fatalf("%s (%s): the client did not end", v.Name, v.Rule)
			}
			if !errors.Is(c.Err(), ErrProtocol) {
				t.Fatalf("%s (%s): ended with %v, want ErrProtocol", v.Name, v.Rule, c.Err())
			}
		})
	}
}
