// Package client is the Go SDK for game clients and dedicated game servers
// that connect to a cloudrift system through an external server.
//
// A Client holds one WebSocket session. Dial connects and waits for the
// server's welcome, which tells the client its ClientRef (the system-wide
// address other servers use to reach it). Afterwards the client sends and
// receives user messages: a 16-bit tag chosen by the game and an opaque
// payload. Messages are received either by a Handler called on the read
// goroutine or from a channel (see Options.Handler).
//
// The server may end a session at any time with a reason (rate limited,
// kicked, shutting down, draining, ...). Err then returns a *CloseError,
// which matches this package's sentinels with errors.Is. A draining server
// first asks its clients to move (Moved) to other servers of the group.
//
// Reconnector keeps a client connected to a group across such ends: it
// picks servers from several URLs or the group's directory (FetchDirectory:
// GET /servers, least loaded first), follows Moves before closing the old
// session (make before break), reconnects after any other loss with
// jittered backoff, keeps its Views subscribed on each new connection,
// posts the client's rows again (Repost) and reports every failover.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cloudrift/cloudrift/cloud"
	"github.com/cloudrift/cloudrift/protocol"
)

// Defaults for the zero values of Options.
const (
	DefaultDialTimeout  = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultQueueSize    = 256
	DefaultMaxReceive   = 16 << 20
	DefaultQueueWait    = 5 * time.Second
)

// maxKeptBuffer is the largest read or write buffer a client keeps between
// messages; a larger one, grown for one big message, is dropped.
const maxKeptBuffer = 64 << 10

// maxWelcomeBytes bounds what Dial reads before the welcome (a welcome or
// a Close is far smaller).
const maxWelcomeBytes = 64 << 10

// Options configure Dial. The zero value of each field but URL is a usable
// default.
type Options struct {
	// URL of the external server's WebSocket endpoint: ws://host:port/path
	// or wss://... A token may ride in the query string.
	URL string

	// TLSConfig configures TLS for a wss:// URL: set its RootCAs to trust
	// a private CA (or a test's), or ServerName when the URL's host is not
	// the certificate's name. Nil means the host's trusted roots and the
	// URL's host name. Dial does not modify it. Unused for ws://.
	TLSConfig *tls.Config

	// Header is sent with the upgrade request, for example an
	// Authorization header that a server plugin checks. Nil sends none.
	// Dial does not modify it.
	Header http.Header

	// DialTimeout bounds all of Dial: TCP connect, TLS, the upgrade and the
	// server's welcome. Zero or negative means DefaultDialTimeout (10s).
	DialTimeout time.Duration

	// WriteTimeout bounds each Send, and the close frame Close sends (and
	// how long Close waits for the server to answer it); a write may run
	// up to a sixteenth longer. Zero or negative means
	// DefaultWriteTimeout (10s).
	WriteTimeout time.Duration

	// ReadTimeout, when positive, ends the client when nothing (no message,
	// no ping) arrives from the server for that long; set it above the
	// server's ping interval. Zero or negative means no read deadline: a
	// silent server is then noticed only when a Send fails.
	ReadTimeout time.Duration

	// Handler, when set, is called on the client's read goroutine for every
	// user message, one at a time, in the order the server sent them. The
	// Payload is valid only during the call (the buffer is reused); copy it
	// to keep it. While Handler runs no further message is read, so a slow
	// Handler slows the session down (and may get it closed as a slow
	// client). Handler may call Send; it must not call Close, which waits
	// for the read goroutine (call it from another goroutine instead).
	// A panic in Handler is not recovered.
	//
	// When Handler is nil, messages are delivered on the channel returned
	// by Messages.
	Handler func(Message)

	// QueueSize is the capacity of the Messages channel (unused when
	// Handler is set), and of the Notifications channel. Zero or negative
	// means DefaultQueueSize (256). See Messages and Notifications for
	// what happens when one is full.
	QueueSize int

	// QueueWait is how long a message that finds the Messages channel full
	// waits for room before the client gives up and ends (ErrQueueFull).
	// The client reads nothing from the server meanwhile, so it bounds how
	// late the client notices that the connection ended. Zero or negative
	// means DefaultQueueWait (5s).
	QueueWait time.Duration

	// MaxReceive is the largest message, in bytes, the client accepts
	// from the server; a larger one ends the client with an error matching
	// ErrProtocol. It bounds the memory a misbehaving server can make the
	// client hold. Zero or negative means DefaultMaxReceive (16 MiB);
	// raise it for a system whose plugins send larger messages.
	MaxReceive int

	// OnCloud, when set, is called on the client's read goroutine for
	// every cloud-memory notification (of the subscriptions made with Get
	// or View), one at a time, in the order the server sent them, after
	// the client's views have applied it. The same rules as Handler's
	// apply: it must not block for long, and must not call Close. When
	// OnCloud is nil, notifications go to the channel Notifications
	// returns.
	OnCloud func(cloud.Notification)

	// keepPosted makes the client remember the rows it posted and has not
	// released, so that a Reconnector can post them again on the next
	// connection (Reconnector.Repost).
	keepPosted bool
}

// withDefaults validates o and fills in its zero values.
func (o Options) withDefaults() (Options, error) {
	if o.URL == "" {
		return o, errors.New("client: Options.URL is empty")
	}
	if err := checkWSURL(o.URL); err != nil {
		return o, fmt.Errorf("client: Options.URL: %w", err)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.ReadTimeout < 0 {
		o.ReadTimeout = 0
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.MaxReceive <= 0 {
		o.MaxReceive = DefaultMaxReceive
	}
	if o.QueueWait <= 0 {
		o.QueueWait = DefaultQueueWait
	}
	return o, nil
}

// Message is one user message.
type Message struct {
	Tag     uint16 // chosen by the game
	Payload []byte // see Options.Handler for how long it is valid
}

// Client is one session with an external server. Its methods are safe for
// concurrent use.
type Client struct {
	conn    *websocket.Conn
	opts    Options
	ref     protocol.ClientRef
	max     int
	msgs    chan Message  // nil in handler style
	moves   chan Move     // capacity 1: the latest Move not yet received
	quit    chan struct{} // closed by Close
	done    chan struct{} // closed when the read loop has ended
	closing sync.Once

	wmu  sync.Mutex // serializes Send; guards wbuf
	wbuf []byte

	cloud cloudState

	mu       sync.Mutex // guards the fields below
	closed   bool       // Close was called
	ended    bool       // the read loop has ended; err is final
	err      error      // why the client ended (final once ended)
	writeErr error      // first failed write, the likely cause of an end
}

// Dial connects to opts.URL and waits for the server's welcome. It returns
// a connected client, or an error: a *CloseError when the server refused
// the client with a reason (errors.Is(err, ErrAuthRefused), ...), an
// error wrapping ctx's error when ctx ends or DialTimeout passes first, or
// the I/O or HTTP error otherwise. On error nothing is left running.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()

	d := websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: o.DialTimeout, TLSClientConfig: o.TLSConfig,
		NetDialContext: dialSlack(o.WriteTimeout / 16)}
	conn, resp, err := d.DialContext(ctx, o.URL, o.Header)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: dial %s: %w", o.URL, ctx.Err())
		}
		if resp != nil {
			return nil, fmt.Errorf("client: dial %s: %w (HTTP %s)", o.URL, err, resp.Status)
		}
		return nil, fmt.Errorf("client: dial %s: %w", o.URL, err)
	}

	// Closing the connection is how a cancelled ctx interrupts the read.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	w, err := readWelcome(conn, o)
	if !stop() && err == nil {
		err = ctx.Err() // ctx ended just as the welcome arrived; conn is closed
	}
	if err != nil {
		conn.Close()
		var ce *CloseError
		if errors.As(err, &ce) {
			return nil, ce
		}
		if ctx.Err() != nil {
			err = ctx.Err() // the read failed because ctx closed the connection
		}
		return nil, fmt.Errorf("client: dial %s: %w", o.URL, err)
	}

	conn.SetReadLimit(int64(protocol.WSHeaderSize + o.MaxReceive))
	if o.ReadTimeout > 0 {
		conn.SetReadDeadline(time.Now().Add(o.ReadTimeout))
	} else {
		conn.SetReadDeadline(time.Time{})
	}
	c := &Client{
		conn: conn,
		opts: o,
		ref:  protocol.ClientRef{Server: w.ServerID, ID: w.ClientID},
		max:  int(w.MaxMessage),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	if o.Handler == nil {
		c.msgs = make(chan Message, o.QueueSize)
	}
	c.moves = make(chan Move, 1)
	c.cloud.keep = o.keepPosted
	if o.OnCloud == nil {
		c.cloud.notes = make(chan cloud.Notification, o.QueueSize)
	}
	conn.SetPingHandler(c.onPing)
	go c.readLoop()
	return c, nil
}

// readWelcome reads the server's first message: a welcome, or a Close
// (returned as a *CloseError after answering with a close frame). It sets
// no deadline: Dial's context closes conn when it ends.
func readWelcome(conn *websocket.Conn, o Options) (protocol.ClientWelcome, error) {
	var w protocol.ClientWelcome
	conn.SetReadLimit(maxWelcomeBytes)
	mt, b, err := conn.ReadMessage()
	if err != nil {
		return w, fmt.Errorf("waiting for the welcome: %w", err)
	}
	if mt != websocket.BinaryMessage {
		return w, fmt.Errorf("%w: text message instead of the welcome", ErrProtocol)
	}
	f, err := protocol.DecodeWS(b)
	if err != nil {
		return w, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	switch f.Kind {
	case protocol.KindClientWelcome:
		if err := w.Decode(f.Payload); err != nil {
			return w, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if w.ServerID == "" || w.ClientID == 0 {
			return w, fmt.Errorf("%w: welcome names no client (%q, %d)", ErrProtocol, w.ServerID, w.ClientID)
		}
		return w, nil
	case protocol.KindClose:
		err := decodeClose(f.Payload)
		sendCloseFrame(conn, o.WriteTimeout)
		return w, err
	default:
		return w, fmt.Errorf("%w: %s message instead of the welcome", ErrProtocol, f.Kind)
	}
}

// sendCloseFrame sends a normal-closure WebSocket close frame within
// timeout. Callers that are ending the connection anyway ignore the error.
func sendCloseFrame(conn *websocket.Conn, timeout time.Duration) error {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	return conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(timeout))
}

// onPing answers a server ping with a pong and extends the read deadline.
// It runs on the read goroutine.
func (c *Client) onPing(data string) error {
	if c.opts.ReadTimeout > 0 {
		c.conn.SetReadDeadline(time.Now().Add(c.opts.ReadTimeout))
	}
	err := c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.opts.WriteTimeout))
	var ne net.Error
	if err == websocket.ErrCloseSent || (errors.As(err, &ne) && ne.Timeout()) {
		return nil // closing anyway, or a congested socket: the next ping retries
	}
	return err
}

// Ref returns the client's system-wide address, as the server's welcome
// told it.
func (c *Client) Ref() protocol.ClientRef { return c.ref }

// MaxMessage returns the largest payload the server accepts from this
// client; Send refuses larger ones. Zero means the server announced no
// limit.
func (c *Client) MaxMessage() int { return c.max }

// Messages returns the channel on which user messages arrive, in order,
// when Options.Handler is nil; it returns nil when Handler is set. Each
// Payload belongs to the receiver. The channel is closed when the client
// ends (after Err is set); messages still in it can be received after
// that. It holds Options.QueueSize messages. A message that finds it full
// waits up to Options.QueueWait for room, while the client reads nothing
// more from the server; when no room frees in that time the client ends
// with an error matching ErrQueueFull, so a receiver that stopped for good
// never leaves the client hanging on a connection it no longer watches.
// Messages that arrive after Close is called are discarded.
func (c *Client) Messages() <-chan Message { return c.msgs }

// Move is a server's request that the client connect to another server
// of the group and then close this session (make before break): the
// server is draining. URLs, least loaded first, may be empty: the client
// then uses its group's directory or the URLs it was configured with.
type Move = protocol.Move

// Moved returns a channel that receives the server's Move requests. It
// holds one: a Move not received before the next one arrives is replaced
// by it. The session goes on after a Move until the client closes it or
// the server's drain timeout ends it (with a *CloseError of
// protocol.ReasonDraining). A Reconnector follows Moves by itself.
func (c *Client) Moved() <-chan Move { return c.moves }

// Send sends one user message with the given tag. It returns an error
// matching ErrMessageTooLarge, without sending, when payload exceeds
// MaxMessage; an error matching ErrClosed once Close was called or the
// client has ended (matching the end's reason too, as Err would); and the
// write error when the write fails or does not finish within
// Options.WriteTimeout, which ends the client. Send is safe for concurrent
// use (messages are written one at a time); it does not retain payload.
//
// Send blocks while the socket's buffer is full: when the server holds
// this client back (backpressure: it stops reading a client whose
// messages fill a busy link between servers, until the link drains),
// Send waits, up to Options.WriteTimeout.
func (c *Client) Send(tag uint16, payload []byte) error {
	if err := c.sendable(); err != nil {
		return err
	}
	if c.max > 0 && len(payload) > c.max {
		return fmt.Errorf("%w: %d bytes, the server accepts at most %d", ErrMessageTooLarge, len(payload), c.max)
	}
	return c.write(protocol.KindUser, tag, payload)
}

// write sends one message of any kind; see Send for its errors.
func (c *Client) write(kind protocol.Kind, tag uint16, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.sendable(); err != nil {
		return err
	}
	c.wbuf = protocol.AppendWS(c.wbuf[:0], kind, tag, payload)
	c.conn.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	err := c.conn.WriteMessage(websocket.BinaryMessage, c.wbuf)
	if cap(c.wbuf) > maxKeptBuffer {
		c.wbuf = nil
	}
	if err == nil {
		return nil
	}
	err = fmt.Errorf("client: write: %w", err)
	c.mu.Lock()
	closed := c.closed
	if !closed && c.writeErr == nil {
		c.writeErr = err
	}
	c.mu.Unlock()
	if closed {
		return ErrClosed // Close's close frame made the write fail
	}
	// A failed or timed-out write leaves the connection unusable: end it.
	c.conn.Close()
	return err
}

// sendable returns nil while the client may send, else the error Send
// returns.
func (c *Client) sendable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.ended && !errors.Is(c.err, ErrClosed):
		return fmt.Errorf("%w: %w", ErrClosed, c.err)
	case c.ended:
		return ErrClosed
	}
	return nil
}

// Close ends the session: it sends a WebSocket close frame, waits up to
// Options.WriteTimeout for the server to answer it, closes the connection
// and waits for the read goroutine to end (and for Handler to return). It
// then returns nil. Close is idempotent and safe for concurrent use; later
// calls wait for the first to finish. It must not be called from Handler.
func (c *Client) Close() error {
	c.closing.Do(func() {
		c.mu.Lock()
		c.closed = true
		ended := c.ended
		c.mu.Unlock()
		close(c.quit)
		if ended {
			return
		}
		if err := sendCloseFrame(c.conn, c.opts.WriteTimeout); err != nil {
			c.conn.Close()
		}
		t := time.NewTimer(c.opts.WriteTimeout)
		defer t.Stop()
		select {
		case <-c.done:
		case <-t.C:
			c.conn.Close()
		}
	})
	<-c.done
	return nil
}

// Done returns a channel that is closed when the client has ended: the
// server closed the session, the connection failed, or Close was called.
// By then Err is set, the Messages channel is closed and the read
// goroutine has returned.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the client runs. Once it has ended (Done is
// closed, or the Messages channel is closed), Err returns why: a
// *CloseError carrying the server's reason (matching a sentinel such as
// ErrKicked), ErrClosed when Close ended it, an error matching ErrProtocol
// when the server broke the protocol, or the I/O error.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		return nil
	}
	return c.err
}
