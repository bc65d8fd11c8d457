package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestDialWSSTrustsTLSConfigRoots(t *testing.T) {
	up := websocket.Upgrader{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // the untrusted dial fails before the upgrade
		}
		defer conn.Close()
		welcome(t, conn, 9, 1024)
		drain(conn)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted dial's handshake error
	srv.StartTLS()
	defer srv.Close()
	url := "wss" + strings.TrimPrefix(srv.URL, "https") + "/ws"

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := Dial(ctx, Options{URL: url})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("without the server's CA: err = %v, want x509.UnknownAuthorityError", err)
	}

	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg := &tls.Config{RootCAs: pool}
	c := dial(t, Options{URL: url, TLSConfig: cfg})
	if ref := c.Ref(); ref.ID != 9 || ref.Server != "ext-1" {
		t.Fatalf("ref = %+v", ref)
	}
	if cfg.ServerName != "" || len(cfg.NextProtos) != 0 {
		t.Errorf("Dial modified Options.TLSConfig: %+v", cfg)
	}
	c.Close()
}
