package bench

import "context"

func (b *bencher) partStatus(ctx context.Context) {}
func (b *bencher) partStorm(ctx context.Context)  {}
func (b *bencher) partScale(ctx context.Context)  {}
