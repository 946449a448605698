// Package version says which wsgate this is: the release, the commit it
// was built from and whether the tree was modified, the Go version and
// the build date. The daemon prints it (wsgate --version), logs it at
// startup, mod_wsgate logs it in each child, producers get it in HELLO,
// and the metrics carry it (wsgate_build_info).
package version

import (
	"runtime/debug"
	"strings"
	"sync"
)

// Release is set at build time for a release or a package:
//
//	go build -ldflags "-X github.com/wsgate/wsgate/internal/version.Release=1.2.0"
//
// Otherwise it is the module's version, or "devel". Commit and BuildDate
// are set the same way by builds that have no VCS stamp (a package built
// with -buildvcs=false, or from a tarball): the commit, and the date of
// the build (SOURCE_DATE_EPOCH's, for reproducible packages).
var (
	Release   = ""
	Commit    = ""
	Dirty     = "" // "true" when the tree had uncommitted changes
	BuildDate = ""
)

// Info describes the running build.
type Info struct {
	Release   string
	Revision  string // the VCS commit, "" when unknown
	Modified  bool   // the tree had uncommitted changes
	Time      string // the commit's date (vcs.time), RFC 3339
	BuildDate string // when it was built, when the build said so
	GoVersion string
}

var (
	once sync.Once
	info Info
)

// Get returns the running build's description.
func Get() Info {
	once.Do(func() {
		info.Release = Release
		info.Revision = Commit
		info.Modified = Dirty == "true"
		info.BuildDate = BuildDate
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			if info.Release == "" {
				info.Release = "devel"
			}
			return
		}
		info.GoVersion = bi.GoVersion
		if info.Release == "" {
			info.Release = strings.TrimPrefix(bi.Main.Version, "v")
		}
		if info.Release == "" || info.Release == "(devel)" {
			info.Release = "devel"
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			case "vcs.time":
				info.Time = s.Value
			}
		}
	})
	return info
}

// String is one line: "1.2.0 (commit 1234abcd5678, modified, committed
// 2026-11-29T10:00:00Z, built 2026-11-30T08:00:00Z, go1.26.8)".
func (i Info) String() string {
	var parts []string
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "commit "+rev)
	}
	if i.Modified {
		parts = append(parts, "modified")
	}
	if i.Time != "" {
		parts = append(parts, "committed "+i.Time)
	}
	if i.BuildDate != "" {
		parts = append(parts, "built "+i.BuildDate)
	}
	if i.GoVersion != "" {
		parts = append(parts, i.GoVersion)
	}
	if len(parts) == 0 {
		return i.Release
	}
	return i.Release + " (" + strings.Join(parts, ", ") + ")"
}

// Short is the release and the commit, for protocol greetings:
// "wsgate/1.2.0+1234abcd".
func (i Info) Short() string {
	s := "wsgate/" + i.Release
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 8 {
			rev = rev[:8]
		}
		s += "+" + rev
	}
	if i.Modified {
		s += "-modified"
	}
	return s
}
