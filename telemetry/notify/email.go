package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/mail"
	"strconv"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// EmailConfig is notifications.email of the telemetry config.
type EmailConfig struct {
	Enabled     bool     `json:"enabled"`
	SMTPServer  string   `json:"smtp_server"`
	SMTPPort    int      `json:"smtp_port"`
	FromAddress string   `json:"from_address"`
	ToAddresses []string `json:"to_addresses"`
	// UseTLS makes STARTTLS mandatory (implicit TLS on port 465); false
	// sends in clear text, for a relay on the same host.
	UseTLS bool `json:"use_tls"`
	// Username enables SMTP AUTH; SMTP_USERNAME wins over it.
	Username string `json:"username"`
	// Password comes only from SMTP_PASSWORD, never from the file.
	Password    string `json:"-"`
	Description string `json:"description,omitempty"`
}

// Validate names the key and the rule.
func (c EmailConfig) Validate() error {
	var errs []error
	if c.Enabled {
		if strings.TrimSpace(c.SMTPServer) == "" {
			errs = append(errs, errors.New("smtp_server: required when enabled"))
		}
		if len(c.ToAddresses) == 0 {
			errs = append(errs, errors.New("to_addresses: list at least one recipient when enabled"))
		}
		if c.FromAddress == "" {
			errs = append(errs, errors.New("from_address: required when enabled"))
		}
		if c.Password != "" && c.Username == "" {
			errs = append(errs, errors.New("username: required when SMTP_PASSWORD is set (set it or SMTP_USERNAME)"))
		}
	}
	if strings.ContainsAny(c.SMTPServer, " /:") {
		errs = append(errs, fmt.Errorf("smtp_server: must be a host name or address without port or scheme (%q)", c.SMTPServer))
	}
	if c.SMTPPort < 1 || c.SMTPPort > 65535 {
		errs = append(errs, fmt.Errorf("smtp_port: must be between 1 and 65535 (%d)", c.SMTPPort))
	}
	if c.FromAddress != "" {
		if _, err := mail.ParseAddress(c.FromAddress); err != nil {
			errs = append(errs, fmt.Errorf("from_address: not an email address (%q)", c.FromAddress))
		}
	}
	for i, a := range c.ToAddresses {
		if _, err := mail.ParseAddress(a); err != nil {
			errs = append(errs, fmt.Errorf("to_addresses[%d]: not an email address (%q)", i, a))
		}
	}
	return errors.Join(errs...)
}

// Email sends a text + HTML mail with go-mail.
type Email struct {
	cfg  EmailConfig
	opts Options
	// tls is the client TLS configuration; nil means the system roots.
	tls *tls.Config
	s   scrubber
}

// NewEmail returns the email channel. tlsConfig may be nil (system roots);
// tests pass one that trusts their server's certificate.
func NewEmail(cfg EmailConfig, opts Options, tlsConfig *tls.Config) *Email {
	return &Email{cfg: cfg, opts: opts, tls: tlsConfig, s: newScrubber(cfg.Password)}
}

// Name is "email".
func (*Email) Name() string { return "email" }

func (n *Email) message(m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(n.cfg.FromAddress); err != nil {
		return nil, fmt.Errorf("from_address: %w", err)
	}
	if err := msg.To(n.cfg.ToAddresses...); err != nil {
		return nil, fmt.Errorf("to_addresses: %w", err)
	}
	msg.Subject(m.Title)
	msg.SetDateWithValue(m.Time)
	msg.SetMessageID()
	msg.SetGenHeader(gomail.HeaderXMailer, "ssid-anchor telemetry")
	msg.SetBodyString(gomail.TypeTextPlain, emailText(m))
	msg.AddAlternativeString(gomail.TypeTextHTML, emailHTML(m))
	return msg, nil
}

func emailText(m Message) string {
	var b strings.Builder
	b.WriteString(m.Title + "\n\n")
	for _, l := range m.Lines {
		b.WriteString(l.Plain() + "\n")
	}
	if ev := eventLines(m); len(ev) > 0 {
		b.WriteString("\n")
		for _, l := range ev {
			b.WriteString("- " + l.Plain() + "\n")
		}
	}
	if len(m.Fields) > 0 {
		b.WriteString("\n")
		for _, f := range m.Fields {
			b.WriteString(f.Name + ": " + orNA(f.Value) + "\n")
		}
	}
	b.WriteString("\n-- \n" + Footer + "\n")
	return b.String()
}

func htmlLine(l Line) string {
	var b strings.Builder
	for _, sp := range l {
		t := html.EscapeString(sp.Text)
		if sp.Bold {
			b.WriteString("<strong>" + t + "</strong>")
		} else {
			b.WriteString(t)
		}
	}
	return b.String()
}

func emailHTML(m Message) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n")
	fmt.Fprintf(&b, "<h2 style=\"border-left:6px solid %s;padding-left:8px\">%s</h2>\n", m.Level.Color(), html.EscapeString(m.Title))
	for _, l := range m.Lines {
		b.WriteString("<p>" + htmlLine(l) + "</p>\n")
	}
	if ev := eventLines(m); len(ev) > 0 {
		b.WriteString("<ul>\n")
		for _, l := range ev {
			b.WriteString("<li>" + htmlLine(l) + "</li>\n")
		}
		b.WriteString("</ul>\n")
	}
	if len(m.Fields) > 0 {
		b.WriteString("<table>\n")
		for _, f := range m.Fields {
			fmt.Fprintf(&b, "<tr><th align=\"left\">%s</th><td>%s</td></tr>\n", html.EscapeString(f.Name), html.EscapeString(orNA(f.Value)))
		}
		b.WriteString("</table>\n")
	}
	b.WriteString("<p style=\"color:#888\">" + Footer + "</p>\n</body></html>\n")
	return b.String()
}

func (n *Email) server() string {
	mode := "plain text"
	switch {
	case n.cfg.UseTLS && n.cfg.SMTPPort == 465:
		mode = "implicit TLS"
	case n.cfg.UseTLS:
		mode = "STARTTLS required"
	}
	auth := "no auth"
	if n.cfg.Username != "" {
		auth = "with SMTP AUTH (username and password hidden)"
	}
	return fmt.Sprintf("%s (%s, %s)", net.JoinHostPort(n.cfg.SMTPServer, strconv.Itoa(n.cfg.SMTPPort)), mode, auth)
}

// Preview is the whole message as it would be sent (Message-Id differs
// from a real send, which makes a new one).
func (n *Email) Preview(m Message) (Preview, error) {
	msg, err := n.message(m)
	if err != nil {
		return Preview{}, err
	}
	var b strings.Builder
	if _, err := msg.WriteTo(&b); err != nil {
		return Preview{}, fmt.Errorf("rendering mail: %w", err)
	}
	return Preview{Channel: n.Name(), Server: n.server(), Mail: strings.ReplaceAll(b.String(), "\r\n", "\n")}, nil
}

func (n *Email) client() (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(n.cfg.SMTPPort),
		gomail.WithTimeout(n.opts.timeout()),
	}
	switch {
	case n.cfg.UseTLS && n.cfg.SMTPPort == 465:
		opts = append(opts, gomail.WithSSL())
	case n.cfg.UseTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if n.tls != nil {
		t := n.tls.Clone()
		if t.ServerName == "" {
			t.ServerName = n.cfg.SMTPServer
		}
		opts = append(opts, gomail.WithTLSConfig(t))
	}
	if n.cfg.Username != "" || n.cfg.Password != "" {
		// Over TLS the strongest mechanism the server offers; without TLS
		// only PLAIN, which go-mail refuses unless the server is loopback,
		// so a password never crosses the network in clear text.
		mech := gomail.SMTPAuthPlain
		if n.cfg.UseTLS {
			mech = gomail.SMTPAuthAutoDiscover
		}
		opts = append(opts, gomail.WithSMTPAuth(mech),
			gomail.WithUsername(n.cfg.Username), gomail.WithPassword(n.cfg.Password))
	}
	return gomail.NewClient(n.cfg.SMTPServer, opts...)
}

// Notify sends m to every recipient. A refused recipient is a failure; a
// temporary (4xx) SMTP answer or a connection problem is retried.
func (n *Email) Notify(ctx context.Context, m Message) error {
	msg, err := n.message(m)
	if err != nil {
		return err
	}
	c, err := n.client()
	if err != nil {
		return &Error{Channel: n.Name(), Attempts: 0, msg: n.s.scrub(fmt.Sprintf("%s: smtp client: %v", n.Name(), err))}
	}
	return n.opts.deliver(ctx, n.Name(), n.s, func(ctx context.Context) result {
		err := c.DialAndSendWithContext(ctx, msg)
		if err == nil {
			return result{}
		}
		var se *gomail.SendError
		e := fmt.Errorf("smtp %s: %w", net.JoinHostPort(n.cfg.SMTPServer, strconv.Itoa(n.cfg.SMTPPort)), err)
		if errors.As(err, &se) {
			// Connection-level failures are transient; a refused sender,
			// recipient or message is not, unless the server said 4xx.
			return result{err: e, retry: se.IsTemp() || se.Reason == gomail.ErrConnCheck || se.Reason == gomail.ErrWriteContent}
		}
		// A connection that could not be made or broke is transient; a
		// server without STARTTLS or refusing AUTH is not.
		var ne net.Error
		return result{err: e, retry: errors.As(err, &ne) || errors.Is(err, io.EOF)}
	})
}
