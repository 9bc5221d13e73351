/* header_c99.c - clattn.h compiles as strict C99 (pedantic) and links. */
#include "clattn.h"

#include <string.h>

int main(void)
{
    clattn_attention_desc d;
    memset(&d, 0, sizeof d);
    return strcmp(clattn_status_name(CLATTN_ERROR_HEAD_DIM), "CLATTN_ERROR_HEAD_DIM") != 0 || d.causal != 0;
}
