package version

import "testing"

func TestString(t *testing.T) {
	for _, tc := range []struct {
		info        Info
		long, short string
	}{
		{Info{Release: "devel"}, "devel", "wsgate/devel"},
		{Info{Release: "0.2.0", Revision: "0123456789abcdef0123", GoVersion: "go1.26.8"},
			"0.2.0 (commit 0123456789ab, go1.26.8)", "wsgate/0.2.0+01234567"},
		{Info{Release: "0.2.0", Revision: "0123456789abcdef", Modified: true, Time: "2026-11-29T10:00:00Z", BuildDate: "2026-11-30T08:00:00Z", GoVersion: "go1.26.8"},
			"0.2.0 (commit 0123456789ab, modified, committed 2026-11-29T10:00:00Z, built 2026-11-30T08:00:00Z, go1.26.8)",
			"wsgate/0.2.0+01234567-modified"},
	} {
		if got := tc.info.String(); got != tc.long {
			t.Errorf("String() = %q, want %q", got, tc.long)
		}
		if got := tc.info.Short(); got != tc.short {
			t.Errorf("Short() = %q, want %q", got, tc.short)
		}
	}
}
