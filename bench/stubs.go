package bench

import "context"

func (b *bencher) partDaemon(ctx context.Context) {}
func (b *bencher) partAPI(ctx context.Context)    {}
func (b *bencher) partStatus(ctx context.Context) {}
func (b *bencher) partStorm(ctx context.Context)  {}
func (b *bencher) partScale(ctx context.Context)  {}
