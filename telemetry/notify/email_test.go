package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpServer is a real SMTP server (emersion/go-smtp) on loopback.
type smtpServer struct {
	srv  *smtp.Server
	port int
	// user/pass enable AUTH PLAIN; rejectRcpt refuses that recipient.
	user, pass, rejectRcpt string

	mu       sync.Mutex
	mails    []received
	authed   []string
	sessions int
}

type received struct {
	from string
	to   []string
	data []byte
}

type session struct {
	s    *smtpServer
	from string
	to   []string
	auth bool
}

func (s *session) AuthMechanisms() []string {
	if s.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != s.s.user || pass != s.s.pass {
			return errors.New("invalid credentials")
		}
		s.auth = true
		s.s.mu.Lock()
		s.s.authed = append(s.s.authed, user)
		s.s.mu.Unlock()
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.s.user != "" && !s.auth {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == s.s.rejectRcpt {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.s.mu.Lock()
	s.s.mails = append(s.s.mails, received{s.from, s.to, b})
	s.s.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func startSMTP(t *testing.T, s *smtpServer, tlsCfg *tls.Config) *smtpServer {
	t.Helper()
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		return &session{s: s}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.srv.TLSConfig = tlsCfg
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	go s.srv.Serve(l)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *smtpServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.mails...)
}

func emailCfg(port int) EmailConfig {
	return EmailConfig{Enabled: true, SMTPServer: "127.0.0.1", SMTPPort: port, FromAddress: "governance@ssid.local",
		ToAddresses: []string{"ops@example.org", "audit@example.org"}, UseTLS: false}
}

// parts splits a received mail into its headers and text/HTML bodies.
func parts(t *testing.T, data []byte) (*mail.Message, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a mail: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q, want multipart/alternative", msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var text, html string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		// multipart.Part decodes quoted-printable itself.
		b, _ := io.ReadAll(p)
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	return msg, text, html
}

func TestEmailDelivered(t *testing.T) {
	for _, tc := range []struct {
		name       string
		user, pass string
	}{
		{"without auth", "", ""},
		{"with AUTH PLAIN", "relay-user", "s3cr3t-smtp-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startSMTP(t, &smtpServer{user: tc.user, pass: tc.pass}, nil)
			cfg := emailCfg(srv.port)
			cfg.Username, cfg.Password = tc.user, tc.pass
			if err := NewEmail(cfg, fast(nil), nil).Notify(context.Background(), sampleMessage()); err != nil {
				t.Fatal(err)
			}
			mails := srv.received()
			if len(mails) != 1 {
				t.Fatalf("%d mails received, want 1", len(mails))
			}
			m := mails[0]
			if m.from != "governance@ssid.local" || strings.Join(m.to, ",") != "ops@example.org,audit@example.org" {
				t.Errorf("envelope from %q to %v", m.from, m.to)
			}
			msg, text, html := parts(t, m.data)
			if got := msg.Header.Get("Subject"); got != "[CRITICAL] SSID compliance score 88/100" {
				t.Errorf("Subject %q", got)
			}
			if msg.Header.Get("Message-Id") == "" {
				t.Error("no Message-Id")
			}
			if d, err := msg.Header.Date(); err != nil || !d.Equal(sampleMessage().Time) {
				t.Errorf("Date %v (%v)", d, err)
			}
			if to := msg.Header.Get("To"); !strings.Contains(to, "ops@example.org") || !strings.Contains(to, "audit@example.org") {
				t.Errorf("To %q", to)
			}
			if !strings.Contains(text, "Compliance score 88/100 (previous 100/100, change -12)") || !strings.Contains(text, "Root-24-LOCK: active") || strings.Contains(text, "<") && !strings.Contains(text, "<row>") {
				t.Errorf("text part:\n%s", text)
			}
			if !strings.Contains(html, "<strong>88/100</strong>") || !strings.Contains(html, "&lt;row&gt; &amp; more") {
				t.Errorf("html part:\n%s", html)
			}
			srv.mu.Lock()
			authed := strings.Join(srv.authed, ",")
			srv.mu.Unlock()
			if authed != tc.user {
				t.Errorf("server saw AUTH as %q, want %q", authed, tc.user)
			}
		})
	}
}

func TestEmailRejectedRecipientIsFailure(t *testing.T) {
	srv := startSMTP(t, &smtpServer{rejectRcpt: "audit@example.org"}, nil)
	err := NewEmail(emailCfg(srv.port), fast(nil), nil).Notify(context.Background(), sampleMessage())
	if err == nil {
		t.Fatal("a refused recipient must be a reported failure")
	}
	if !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "audit@example.org") {
		t.Errorf("error does not say what was refused: %v", err)
	}
	var de *Error
	if !errors.As(err, &de) || de.Attempts != 1 {
		t.Errorf("a permanent 550 must not be retried: %#v", err)
	}
}

func TestEmailUseTLSRequiresSTARTTLS(t *testing.T) {
	srv := startSMTP(t, &smtpServer{}, nil)
	cfg := emailCfg(srv.port)
	cfg.UseTLS = true
	err := NewEmail(cfg, fast(nil), nil).Notify(context.Background(), sampleMessage())
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err = %v; with use_tls a server without STARTTLS must be refused", err)
	}
	if len(srv.received()) != 0 {
		t.Error("mail was sent in clear text although use_tls is true")
	}
}

func TestEmailSTARTTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := startSMTP(t, &smtpServer{user: "u", pass: "tls-password"}, &tls.Config{Certificates: []tls.Certificate{cert}})
	cfg := emailCfg(srv.port)
	cfg.UseTLS, cfg.Username, cfg.Password = true, "u", "tls-password"
	if err := NewEmail(cfg, fast(nil), &tls.Config{RootCAs: pool}).Notify(context.Background(), sampleMessage()); err != nil {
		t.Fatal(err)
	}
	if len(srv.received()) != 1 {
		t.Fatal("no mail over STARTTLS")
	}
}

func TestEmailSecretNeverLeaks(t *testing.T) {
	const password = "hunter2-very-secret"
	srv := startSMTP(t, &smtpServer{user: "relay", pass: "the-right-one"}, nil)
	var logs bytes.Buffer
	cfg := emailCfg(srv.port)
	cfg.Username, cfg.Password = "relay", password
	opts := fast(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	err := NewEmail(cfg, opts, nil).Notify(context.Background(), sampleMessage())
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	t.Logf("error: %v", err)
	pv, perr := NewEmail(cfg, opts, nil).Preview(sampleMessage())
	if perr != nil {
		t.Fatal(perr)
	}
	for what, s := range map[string]string{"error": err.Error(), "log": logs.String(), "preview": pv.Server + pv.Mail} {
		if strings.Contains(s, password) {
			t.Errorf("%s leaks the SMTP password: %s", what, s)
		}
	}
	if logs.Len() == 0 {
		t.Error("no log line was written; the leak check saw nothing")
	}
}

func TestEmailValidate(t *testing.T) {
	err := EmailConfig{Enabled: true, SMTPPort: 0, FromAddress: "nope", ToAddresses: []string{"a@b.c", "broken"}}.Validate()
	if err == nil {
		t.Fatal("invalid email config accepted")
	}
	for _, want := range []string{"smtp_server: required", "smtp_port: must be between 1 and 65535 (0)", `from_address: not an email address ("nope")`, `to_addresses[1]: not an email address ("broken")`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
