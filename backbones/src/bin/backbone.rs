fn main() {
    println!("cuda: {}", tch::Cuda::is_available());
    let t = tch::Tensor::ones([2, 2], (tch::Kind::Float, tch::Device::Cpu));
    t.print();
}
