package publish

import _ "github.com/santhosh-tekuri/jsonschema/v6" // schema validation of the exports
