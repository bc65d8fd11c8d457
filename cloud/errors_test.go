package cloud

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorIs(t *testing.T) {
	sentinels := map[error]bool{}
	for c := CodeBadRequest; c <= CodeRateLimited; c++ {
		s := CodeError(c)
		if s == nil {
			t.Fatalf("code %v has no sentinel", c)
		}
		sentinels[s] = true
		err := fmt.Errorf("op: %w", &Error{Code: c, Message: "m"})
		if !errors.Is(err, s) {
			t.Errorf("code %v: %v does not match %v", c, err, s)
		}
		if c != CodeBadRequest && errors.Is(err, ErrBadRequest) {
			t.Errorf("code %v matches ErrBadRequest", c)
		}
	}
	if len(sentinels) != int(CodeRateLimited-CodeBadRequest) { // NotOwner and Unavailable share one
		t.Errorf("%d distinct sentinels", len(sentinels))
	}
	if CodeError(CodeOK) != nil || errors.Is(&Error{Code: CodeOK}, ErrBadRequest) {
		t.Error("CodeOK has a sentinel")
	}
	if err := NewError(CodeOK, "fine"); err != nil {
		t.Errorf("NewError(CodeOK) = %v, want nil", err)
	}
	var ce *Error
	if err := NewError(CodeRejected, "no"); !errors.As(err, &ce) || ce.Message != "no" || !errors.Is(err, ErrRejected) {
		t.Errorf("NewError(CodeRejected) = %v", err)
	}
}

func TestNotificationTypeString(t *testing.T) {
	if NotifyResync.String() != "resync" || NotificationType(9).String() != "notification(9)" {
		t.Error(NotifyResync.String(), NotificationType(9).String())
	}
}

func TestKeyValidate(t *testing.T) {
	if err := (Key{Primary: strings.Repeat("a", MaxPrimary)}).Validate(); err != nil {
		t.Error(err)
	}
	if (Key{Primary: strings.Repeat("a", MaxPrimary+1)}).Validate() == nil {
		t.Error("long primary accepted")
	}
	if (Key{Primary: "\xff"}).Validate() == nil {
		t.Error("invalid UTF-8 accepted")
	}
}
