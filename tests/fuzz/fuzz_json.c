/* The JSON parser behind the safetensors header, on arbitrary text: parse,
 * walk every member lookup once, free. */
#include "fuzz_common.h"

#include "nn/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cgi_json doc;
    char err[128];
    if (cgi_json_parse(&doc, (const char *)data, size, err, sizeof err) == CG_OK) {
        (void)cgi_json_member(&doc, 0, "__metadata__");
        (void)cgi_json_member(&doc, 0, "");
    }
    cgi_json_free(&doc);
    return 0;
}
