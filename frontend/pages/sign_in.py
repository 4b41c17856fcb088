"""Sign in with a Cognito user of this deployment."""

from frontend import sign_in_form

sign_in_form.show()
