// Package appconfig is the appliance config (SPEC 4.6): its type, its
// defaults, the strict and bounded reading of the file, and its
// validation. Every key has a default; unknown keys, nulls and text after
// the object are errors that name the line or the key. The commands, the
// operations and the daemon all take a Config from here.
package appconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
	"github.com/ssid/ssid-anchor/scheduler"
	"github.com/ssid/ssid-anchor/telemetry"
)

// Config is the --config file (SPEC 4.6).
type Config struct {
	// Comment is the file's explanation (JSON has no comments): a string
	// or list of strings under "_comment" at the top, which nothing reads.
	Comment       Comment       `json:"_comment,omitempty"`
	Paths         tree.Paths    `json:"paths"`
	Anchor        anchor.Config `json:"anchor"`
	Node          node.Config   `json:"node"`
	RemotePinning struct {
		// Services are the remote pinning services; anchor/pinning owns
		// their definition and rules.
		Services []pinning.Service `json:"services"`
	} `json:"remote_pinning"`
	Schedule struct {
		Quarterly string `json:"quarterly"`
		Telemetry string `json:"telemetry"`
	} `json:"schedule"`
	HTTP struct {
		Listen      string `json:"listen"`
		AllowRemote bool   `json:"allow_remote"`
	} `json:"http"`
	RPC RPC `json:"rpc"`
}

// Comment is the config file's "_comment": one string or a list of them.
type Comment []string

// UnmarshalJSON takes a string or a list of strings.
func (c *Comment) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*c = Comment{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("_comment: must be a string or a list of strings")
	}
	*c = many
	return nil
}

// Default is the config with every key at its default:
// configs/appliance.default.json.
func Default() Config {
	var c Config
	c.Paths = tree.DefaultPaths()
	c.Anchor = anchor.DefaultConfig()
	c.Node = node.Config{Profile: node.ProfileAirGapped, Swarm: []string{}, Peering: []string{}}
	c.RemotePinning.Services = []pinning.Service{}
	c.Schedule.Quarterly = "0 9 1 1,4,7,10 *"
	c.HTTP.Listen = "127.0.0.1:8089"
	c.RPC = DefaultRPC()
	return c
}

// Error is a config that cannot be used: a file that cannot be read as
// one, a bad key or value. A command exits 2 on it. It says what its
// cause says.
type Error struct{ err error }

func (e *Error) Error() string { return e.err.Error() }
func (e *Error) Unwrap() error { return e.err }

func errorf(format string, a ...any) error { return &Error{fmt.Errorf(format, a...)} }

// Load reads path over the defaults. A missing file is fine unless the
// user named it explicitly (explicit).
func Load(path string, explicit bool) (Config, error) {
	c := Default()
	b, err := ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return c, nil
	}
	if errors.Is(err, fs.ErrPermission) && !explicit {
		// The default config is in the repo: another user's repo (exit 3).
		return c, node.PermissionError(filepath.Dir(path), path, err)
	}
	if err != nil {
		return c, errorf("reading config %s: %w", path, err)
	}
	if err := DecodeStrict(b, &c); err != nil {
		return c, errorf("config %s: %v", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, errorf("config %s: %v", path, err)
	}
	return c, nil
}

// DecodeStrict decodes one JSON object refusing unknown keys, nulls (which
// encoding/json would silently ignore, keeping the defaults) and text after
// the object, and turns the decoder's error into one that names the line.
func DecodeStrict(b []byte, v any) error {
	if err := refuseNulls(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return fmt.Errorf("%s: text after the JSON object (one object per file)", position(b, dec.InputOffset()-1))
		}
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if off, ok := keyOffset(b, te.Field); ok {
			te.Offset = off
		}
	}
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("%s: %v", position(b, se.Offset-1), se) // Offset is just past the bad byte
	case errors.As(err, &te) && strings.HasPrefix(te.Value, "number") && (strings.Contains(te.Type.Kind().String(), "int") || strings.Contains(te.Type.Kind().String(), "float")):
		v := strings.TrimPrefix(te.Value, "number ")
		if f, perr := strconv.ParseFloat(v, 64); strings.Contains(te.Type.Kind().String(), "int") && perr == nil && f != math.Trunc(f) {
			return fmt.Errorf("%s: key %q: must be a whole number, got %s", position(b, te.Offset), te.Field, v)
		}
		return fmt.Errorf("%s: key %q: %s is out of range for %s", position(b, te.Offset), te.Field, v, te.Type)
	case errors.As(err, &te):
		return fmt.Errorf("%s: key %q: expected %s, got %s", position(b, te.Offset), te.Field, te.Type, te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		if u, ok := findUnknownKey(b, reflect.TypeOf(v)); ok {
			return fmt.Errorf("%s: %s", position(b, u.off), u)
		}
		return fmt.Errorf("%s (remove it or fix its spelling)", strings.TrimPrefix(err.Error(), "json: "))
	}
	return err
}

// refuseNulls requires a JSON object at the top and no null anywhere in it:
// a null section or key would leave the defaults in place while the file
// seems to say otherwise. It names the first null key.
func refuseNulls(b []byte) error {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil // the strict decode reports syntax errors with their line
	}
	if _, ok := doc.(map[string]any); !ok {
		return fmt.Errorf("the file must hold a JSON object, got %s", jsonType(doc))
	}
	if bad := telemetry.FirstNull(b); bad != "" {
		return fmt.Errorf("key %s: null is not a value here (remove the key to use its default)", bad)
	}
	return nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "true or false"
	}
	return "something else"
}

// Validate checks every section; the error names the key, the rule and
// the value.
func (c Config) Validate() error {
	if err := c.Paths.Validate(); err != nil {
		return err
	}
	if err := c.Anchor.Validate(); err != nil {
		return err
	}
	if err := c.Node.Validate(); err != nil {
		return err
	}
	// The scheduler's own parser (robfig/cron with descriptors), so what
	// the config accepts is exactly what the daemon can schedule.
	for _, sc := range []struct{ key, spec string }{{"schedule.quarterly", c.Schedule.Quarterly}, {"schedule.telemetry", c.Schedule.Telemetry}} {
		if sc.spec == "" {
			continue
		}
		if err := scheduler.ParseSpec(sc.spec); err != nil {
			return fmt.Errorf("%s: %q is not a cron spec (%s): %v", sc.key, sc.spec, scheduler.SpecForms, err)
		}
	}
	if err := pinning.ValidateServices(c.RemotePinning.Services); err != nil {
		return err
	}
	if c.HTTP.Listen != "" && !c.HTTP.AllowRemote {
		host, _, err := net.SplitHostPort(c.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen: %q is not host:port", c.HTTP.Listen)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("http.listen: %q is not a loopback address; set http.allow_remote to true to serve it", c.HTTP.Listen)
		}
	}
	return c.RPC.validate()
}
