package anchor

import "github.com/ssid/ssid-anchor/anchor/tree"

// Transitional names while verify.go moves to package tree's; removed once
// every caller uses tree directly.
type (
	Root     = tree.Root
	Paths    = tree.Paths
	NewEvent = tree.NewEvent
)

var (
	OpenRoot        = tree.OpenRoot
	AppendEvent     = tree.AppendEvent
	WriteFileAtomic = tree.WriteFileAtomic
	DefaultPaths    = tree.DefaultPaths
)
