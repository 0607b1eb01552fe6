package bench

import "context"

func (b *bencher) partScale(ctx context.Context)  {}
