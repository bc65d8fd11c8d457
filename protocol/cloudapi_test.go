package protocol

import (
	"errors"
	"fmt"
	"testing"
)

func TestCloudErrorIs(t *testing.T) {
	sentinels := map[error]bool{}
	for c := CloudBadRequest; c <= CloudShuttingDown; c++ {
		s := CloudCodeError(c)
		if s == nil {
			t.Fatalf("code %v has no sentinel", c)
		}
		sentinels[s] = true
		err := fmt.Errorf("op: %w", &CloudError{Code: c, Message: "m"})
		if !errors.Is(err, s) {
			t.Errorf("code %v: %v does not match %v", c, err, s)
		}
		if c != CloudBadRequest && errors.Is(err, ErrCloudBadRequest) {
			t.Errorf("code %v matches ErrCloudBadRequest", c)
		}
	}
	if len(sentinels) != int(CloudShuttingDown-CloudBadRequest) { // NotOwner and Unavailable share one
		t.Errorf("%d distinct sentinels", len(sentinels))
	}
	if CloudCodeError(CloudOK) != nil || errors.Is(&CloudError{Code: CloudOK}, ErrCloudBadRequest) {
		t.Error("CloudOK has a sentinel")
	}
	if err := NewCloudError(CloudOK, "fine"); err != nil {
		t.Errorf("NewCloudError(CloudOK) = %v, want nil", err)
	}
	var ce *CloudError
	if err := NewCloudError(CloudRejected, "no"); !errors.As(err, &ce) || ce.Message != "no" || !errors.Is(err, ErrCloudRejected) {
		t.Errorf("NewCloudError(CloudRejected) = %v", err)
	}
}

func TestCloudNotificationTypeValues(t *testing.T) {
	// A notice's type converts to the notification type by value.
	if CloudNotificationType(CloudUpdated) != CloudNotifyUpdated || CloudNotificationType(CloudDeleted) != CloudNotifyDeleted {
		t.Error("notice and notification types disagree")
	}
	if CloudNotifyResync.String() != "resync" || CloudNotificationType(9).String() != "notification(9)" {
		t.Error(CloudNotifyResync.String(), CloudNotificationType(9).String())
	}
}
